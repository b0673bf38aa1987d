"""Customer lifetime value: who is still alive, what they will buy, what they are worth (BTYD models)."""
