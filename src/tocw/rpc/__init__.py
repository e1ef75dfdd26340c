"""tocw.rpc"""
