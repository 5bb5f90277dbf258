"""What the notebooks use, laid out by what each thing is.

``recorder`` and ``widgets`` (the kit every notebook uses), ``waiting``
(``wait_until``), ``clients/`` (kernel-side and browser clients), ``wire/``
(protocols by hand: raw HTTP, WebSocket frames, the counting relay),
``lessons/`` and ``exercises/`` (one module per notebook, named after it),
``scale/`` (processes beside the kernel), ``bench/`` (the benchmark harness),
``recommend/`` (the transport recommender). The servers live in
``servers``; nothing here is imported by them."""
