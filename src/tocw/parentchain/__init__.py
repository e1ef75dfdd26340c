"""tocw.parentchain"""
