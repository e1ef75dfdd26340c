"""tocw.stf"""
