"""The web dashboard and HTTP API (``videoconverter web``, and ``videoconverter up`` unless ``--no-web``).

Needs the ``web`` extra (FastAPI and uvicorn): ``pip install 'videoconverter[web]'``.
"""
