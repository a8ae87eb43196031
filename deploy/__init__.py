"""polyact.deploy"""
