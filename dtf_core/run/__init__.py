"""The run loop: the Coordinator, the state of a run in flight, retry policy, what to do when the
scheduler goes away, idle-thread chunk balancing and the headless progress view."""
