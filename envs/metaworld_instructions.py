"""Human-written instructions for the 50 Meta-World v3 tasks: three or more paraphrases each.

An episode's instruction is `INSTRUCTIONS[task][seed % len(INSTRUCTIONS[task])]`, so it is fixed by the
seed and every paraphrase is seen across a dataset.
"""

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "assembly-v3": (
        "pick up the ring and put it onto the peg",
        "slide the round nut down over the peg",
        "grab the nut by its handle and assemble it on the peg",
    ),
    "basketball-v3": (
        "dunk the ball into the basket",
        "pick up the basketball and drop it through the hoop",
        "put the ball in the basketball hoop",
    ),
    "bin-picking-v3": (
        "move the cube from the red bin to the blue bin",
        "pick the block out of one bin and place it in the other bin",
        "transfer the puck to the empty bin",
    ),
    "box-close-v3": (
        "put the lid on the box",
        "pick up the lid and close the box with it",
        "cover the box with its lid",
    ),
    "button-press-topdown-v3": (
        "press the button from the top",
        "push the button down",
        "press down on the button from above",
    ),
    "button-press-topdown-wall-v3": (
        "press the button from the top, reaching over the wall",
        "push down the button that stands behind the wall",
        "reach past the wall and press the button down",
    ),
    "button-press-v3": (
        "press the button on the side of the box",
        "push the button in horizontally",
        "poke the button on the front of the box",
    ),
    "button-press-wall-v3": (
        "press the button behind the wall",
        "reach around the wall and push the button in",
        "get past the wall and press the button",
    ),
    "coffee-button-v3": (
        "press the button on the coffee machine",
        "push the coffee maker's button",
        "start the coffee machine by pressing its button",
    ),
    "coffee-pull-v3": (
        "pull the mug away from the coffee machine",
        "take the cup out from under the coffee maker",
        "slide the mug back from the coffee machine to the target",
    ),
    "coffee-push-v3": (
        "push the mug under the coffee machine",
        "slide the cup into place beneath the coffee maker",
        "move the mug under the coffee machine's spout",
    ),
    "dial-turn-v3": (
        "turn the dial",
        "rotate the knob on the dial",
        "spin the dial around",
    ),
    "disassemble-v3": (
        "take the ring off the peg",
        "lift the nut up and off the peg",
        "pull the round nut off the peg",
    ),
    "door-close-v3": (
        "close the door",
        "push the door shut",
        "swing the open door closed",
    ),
    "door-lock-v3": (
        "lock the door by turning the lock",
        "turn the door's lock down",
        "rotate the lock on the door to lock it",
    ),
    "door-open-v3": (
        "open the door",
        "pull the door open by its handle",
        "swing the door open",
    ),
    "door-unlock-v3": (
        "unlock the door by turning the lock",
        "turn the door's lock to unlock it",
        "rotate the lock on the door the other way to open it",
    ),
    "hand-insert-v3": (
        "put the gripper into the hole",
        "insert the hand into the hole in the table",
        "reach into the hole",
    ),
    "drawer-close-v3": (
        "close the drawer",
        "push the drawer shut",
        "slide the open drawer closed",
    ),
    "drawer-open-v3": (
        "open the drawer",
        "pull the drawer out by its handle",
        "slide the drawer open",
    ),
    "faucet-open-v3": (
        "turn the faucet on",
        "rotate the faucet handle to open it",
        "open the tap",
    ),
    "faucet-close-v3": (
        "turn the faucet off",
        "rotate the faucet handle to close it",
        "close the tap",
    ),
    "hammer-v3": (
        "hammer the nail into the wall",
        "pick up the hammer and drive the nail in",
        "use the hammer to knock the nail in",
    ),
    "handle-press-side-v3": (
        "press the handle down from the side",
        "push the side handle down",
        "press down on the handle from its side",
    ),
    "handle-press-v3": (
        "press the handle down",
        "push the handle all the way down",
        "press down on the handle",
    ),
    "handle-pull-side-v3": (
        "pull the handle up from the side",
        "lift the side handle up",
        "raise the handle from its side",
    ),
    "handle-pull-v3": (
        "pull the handle up",
        "lift the handle upwards",
        "raise the handle",
    ),
    "lever-pull-v3": (
        "pull the lever up",
        "lift the lever",
        "raise the lever all the way up",
    ),
    "pick-place-wall-v3": (
        "pick up the puck and place it at the goal behind the wall",
        "lift the puck over the wall and put it on the target",
        "move the puck past the wall to the goal",
    ),
    "pick-out-of-hole-v3": (
        "pick the puck out of the hole",
        "lift the puck up out of the hole",
        "take the puck out of the hole and raise it to the goal",
    ),
    "pick-place-v3": (
        "pick up the puck and place it at the goal",
        "grab the puck and put it on the target",
        "move the puck to the goal position",
    ),
    "plate-slide-v3": (
        "slide the plate into the cabinet",
        "push the plate forward into the goal",
        "slide the puck into the net",
    ),
    "plate-slide-side-v3": (
        "slide the plate sideways into the cabinet",
        "push the plate into the goal from the side",
        "slide the puck sideways into the net",
    ),
    "plate-slide-back-v3": (
        "slide the plate back out of the cabinet",
        "pull the plate back towards you",
        "get the puck back out of the net",
    ),
    "plate-slide-back-side-v3": (
        "slide the plate back out of the cabinet sideways",
        "pull the plate back out to the side",
        "slide the puck out of the net sideways",
    ),
    "peg-insert-side-v3": (
        "insert the peg into the hole from the side",
        "pick up the peg and push it sideways into the hole",
        "put the peg into the side hole",
    ),
    "peg-unplug-side-v3": (
        "unplug the peg from the side",
        "pull the peg out of the side hole",
        "remove the peg from the hole sideways",
    ),
    "soccer-v3": (
        "kick the ball into the goal",
        "push the soccer ball into the net",
        "score a goal with the ball",
    ),
    "stick-push-v3": (
        "use the stick to push the bottle",
        "grab the stick and push the thermos with it",
        "pick up the stick and shove the bottle to the goal",
    ),
    "stick-pull-v3": (
        "use the stick to pull the bottle",
        "grab the stick and drag the thermos back with it",
        "pick up the stick and pull the bottle to the goal",
    ),
    "push-v3": (
        "push the puck to the goal",
        "slide the puck along the table to the target",
        "shove the puck onto the goal",
    ),
    "push-wall-v3": (
        "push the puck around the wall to the goal",
        "slide the puck past the wall to the target",
        "push the puck to the goal, going around the wall",
    ),
    "push-back-v3": (
        "push the puck back to the goal",
        "pull the puck backwards to the target",
        "slide the puck back towards the robot onto the goal",
    ),
    "reach-v3": (
        "reach the goal position",
        "move the gripper to the target",
        "put the hand at the goal",
    ),
    "reach-wall-v3": (
        "reach over the wall to the goal",
        "move the gripper past the wall to the target",
        "get the hand to the goal behind the wall",
    ),
    "shelf-place-v3": (
        "put the puck on the shelf",
        "pick up the block and place it on the shelf",
        "move the puck onto the shelf at the goal",
    ),
    "sweep-into-v3": (
        "sweep the puck into the hole",
        "push the puck into the hole in the table",
        "slide the block into the hole",
    ),
    "sweep-v3": (
        "sweep the puck off the table",
        "push the puck off the edge of the table",
        "slide the block off the table",
    ),
    "window-open-v3": (
        "open the window",
        "slide the window open",
        "push the window sash to open it",
    ),
    "window-close-v3": (
        "close the window",
        "slide the window shut",
        "push the window sash to close it",
    ),
}
