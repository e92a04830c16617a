"""What every trio driver of :mod:`consensus` shares: running a handler (plain or async, under
a deadline, failures captured as :class:`consensus.Failure`) and the service nursery of a
public async context manager."""
