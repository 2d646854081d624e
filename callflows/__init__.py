"""Call logic as sans-IO state machines (events in, commands out), plus a fake runner."""
