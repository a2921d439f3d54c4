"""ConformanceStack (``app.py``), its probe handler (``probe/``) and the helpers the conformance tests share."""
