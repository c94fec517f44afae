"""The run loop: the Coordinator (all the loop's I/O), the pure decisions it applies to finished
attempts, the retry policy, the state of a run in flight, and the parts it owns: its view of the
workers, the tasks waiting to run again, what to do when the scheduler goes away, idle-thread chunk
balancing; and the headless progress view."""
