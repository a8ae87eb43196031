"""polyact.bench"""
