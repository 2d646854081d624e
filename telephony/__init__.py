"""SIP user agent and RTP media engine (asyncio, sans-IO cores).

Knows nothing of units or incidents.
"""
