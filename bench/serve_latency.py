"""Policy-server latency: p50/p99 round trip with 1, 4 and 8 concurrent clients, batched (max_batch=8)
against unbatched (max_batch=1), side by side in one run.

Each client is its own process, as robots are separate machines, running the numpy-only PolicyClient in
a closed loop: send an observation, wait for the chunk, send the next. The server runs in this process
(`serve_in_thread`) with the `small` l1 policy of bench/policies.py (one 64x64 camera, state 4, goal 3,
history 1, chunk 8). Rounds are interleaved (batched and unbatched take turns going first) and the
samples of all rounds are pooled. Throughput is all requests over the span from the first client's
start to the last one's end.

    python -m polyact.bench.serve_latency [--requests 240] [--rounds 2] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from typing import Any

import numpy as np

from polyact.bench.common import header

CLIENTS = (1, 4, 8)
MODES = {"unbatched": 1, "batched": 8}  # max_batch
WARMUP = 3  # requests per client before the clock starts


def random_observation(metadata: dict[str, Any], seed: int) -> dict[str, Any]:
    """A valid observation for the served policy, built from its metadata alone (as a robot would)."""
    rng = np.random.default_rng(seed)
    obs: dict[str, Any] = {"instruction": "reach the goal"}
    for key, feat in metadata["observation"].items():
        if key == "instruction":
            continue
        if key.startswith("intrinsics/"):
            obs[key] = np.array([[60, 0, 32], [0, 60, 32], [0, 0, 1]], np.float32)
        elif feat["dtype"] == "uint8":
            obs[key] = rng.integers(0, 256, feat["shape"], dtype=np.uint8)
        else:
            obs[key] = (0.2 * rng.standard_normal(feat["shape"])).astype(feat["dtype"])
    return obs


def client_process(url: str, requests: int, seed: int, start: Any, results: Any) -> None:
    """One robot: warm up, wait for the others, then `requests` round trips; reports latencies and batches."""
    from polyact.deploy.client import PolicyClient

    with PolicyClient(url, timeout=600.0) as client:
        obs = random_observation(client.metadata, seed)
        for _ in range(WARMUP):
            client.infer(obs)
        start.wait()
        began = time.monotonic()  # system-wide clock: comparable across processes
        latencies, batches = [], []
        for _ in range(requests):
            t = time.perf_counter()
            _, reply = client.infer_reply(obs)
            latencies.append(time.perf_counter() - t)
            batches.append(reply["batch"])
        results.put((latencies, batches, began, time.monotonic()))


def measure(policy: Any, max_batch: int, clients: int, requests: int) -> dict[str, Any]:
    """Latencies (s), batch sizes and throughput of `clients` concurrent closed-loop clients."""
    from polyact.deploy.config import ServeConfig
    from polyact.deploy.server import serve_in_thread

    ctx = mp.get_context("spawn")  # the children import numpy and the client, not torch
    start, results = ctx.Barrier(clients), ctx.Queue()
    with serve_in_thread(policy, ServeConfig(port=0, max_batch=max_batch, max_connections=clients + 1)) as server:
        procs = [
            ctx.Process(target=client_process, args=(server.url, requests // clients, i, start, results))
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        reports = [results.get() for _ in procs]
        for p in procs:
            p.join()
    latencies = [x for r in reports for x in r[0]]
    span = max(r[3] for r in reports) - min(r[2] for r in reports)
    return {"latencies": latencies, "batches": [b for r in reports for b in r[1]], "throughput": len(latencies) / span}


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) * 1e3


def table(pooled: dict[tuple[str, int], dict[str, list]]) -> list[str]:
    rows = [
        "| clients | unbatched p50 | unbatched p99 | batched p50 | batched p99 | p50 ratio | p99 ratio "
        "| mean batch | throughput unbatched / batched (req/s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in CLIENTS:
        u, b = pooled[("unbatched", n)], pooled[("batched", n)]
        u50, u99 = percentile_ms(u["latencies"], 50), percentile_ms(u["latencies"], 99)
        b50, b99 = percentile_ms(b["latencies"], 50), percentile_ms(b["latencies"], 99)
        rows.append(
            f"| {n} | {u50:.1f} ms | {u99:.1f} ms | {b50:.1f} ms | {b99:.1f} ms | {u50 / b50:.2f}x | {u99 / b99:.2f}x "
            f"| {np.mean(b['batches']):.1f} | {np.mean(u['throughput']):.0f} / {np.mean(b['throughput']):.0f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=240, help="timed requests per configuration and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the server")
    parser.add_argument("--quick", action="store_true", help="one round of 48 requests (a smoke run)")
    args = parser.parse_args(argv)
    import torch

    from polyact.bench.policies import build, setup
    from polyact.deploy.policy import ServedPolicy

    torch.set_num_threads(args.threads)
    rounds, requests = (1, 48) if args.quick else (args.rounds, args.requests)
    spec, stats = setup(64)
    policy = ServedPolicy(build("l1", {}, spec, stats).eval(), spec, "small-l1")
    policy.warm_up()
    print(header("polyact serve latency (CPU)"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"torch {torch.__version__}, {args.threads} server thread(s); small l1 policy, 64x64 camera, chunk 8; "
        f"{requests} timed requests per configuration and round, {rounds} interleaved round(s); clients are "
        "processes on this machine\n"
    )
    pooled: dict[tuple[str, int], dict[str, list]] = {}
    for r in range(rounds):
        for n in CLIENTS:
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
            for mode in order:
                got = measure(policy, MODES[mode], n, requests)
                entry = pooled.setdefault((mode, n), {"latencies": [], "batches": [], "throughput": []})
                entry["latencies"] += got["latencies"]
                entry["batches"] += got["batches"]
                entry["throughput"].append(got["throughput"])
                print(
                    f"round {r + 1}, {n} client(s), {mode}: p50 {percentile_ms(got['latencies'], 50):.1f} ms, "
                    f"{got['throughput']:.0f} req/s",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    print("\n".join(table(pooled)))


if __name__ == "__main__":
    main()
