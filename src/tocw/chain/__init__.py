"""tocw.chain"""
