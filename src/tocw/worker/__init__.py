"""tocw.worker"""
