"""Call logic as sans-IO state machines (events in, commands out) and the runners that execute them."""
