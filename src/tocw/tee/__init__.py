"""tocw.tee"""
