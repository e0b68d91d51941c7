"""The job worker: an interface like web/ and cli/ — it takes jobs off the queue and calls the use cases."""
