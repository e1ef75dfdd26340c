"""tocw.primitives"""
