"""polyact.train"""
