"""What runs in Lambda: the reliable async patterns, with nothing of any particular app."""
