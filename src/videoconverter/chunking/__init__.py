"""One long source across many workers: split into pieces, encode them anywhere, join them without re-encoding.

The worker that receives a long MP4 job plans the pieces (:mod:`.plan`), records the plan in the job store and
queues one message per piece on the rendition's own queue (:mod:`.messages`); any worker of the rendition
encodes a piece (:mod:`.encode`) into the work area in the object store (:mod:`.work`) and counts it in the job
store, atomically; the worker that counts the last piece queues the join (:mod:`.join`), which concatenates the
pieces (FFmpeg's concat demuxer, ``-c copy``), muxes the audio (encoded once, over the whole duration, as a piece
of its own), writes the output with the marker last and deletes the work area. :mod:`.handler` runs the steps.
"""
