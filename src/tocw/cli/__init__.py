"""tocw.cli"""
