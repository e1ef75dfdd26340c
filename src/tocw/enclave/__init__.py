"""tocw.enclave"""
