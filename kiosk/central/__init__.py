"""The reference central server that many kiosks sync to."""
