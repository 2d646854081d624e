"""The SIP lab: real Kamailio, baresip and SIPp peers on loopback for tests and the demo."""
