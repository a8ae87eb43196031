"""polyact.eval"""
