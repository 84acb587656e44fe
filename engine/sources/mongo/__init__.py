"""The ``mongo`` source kind: ``source`` is the kind itself; ``driver`` (pymongo through a tunnel)
and ``tools`` (the host's mongodump) are its two methods; ``common`` is what they share.
"""
