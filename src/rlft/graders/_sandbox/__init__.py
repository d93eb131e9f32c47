"""The sandbox that runs untrusted python graders in worker processes (``pool`` in the parent,
``proc`` for the process plumbing, ``worker`` is the script each worker process runs)."""
