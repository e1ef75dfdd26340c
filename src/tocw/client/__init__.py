"""tocw.client"""
