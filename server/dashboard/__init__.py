"""`seenext dashboard`: a read-only web page for marketing on its own port (issue 12, point 5).

It is a client of the gRPC API, like any other: every figure on the page is the reply of an RPC
(ChannelReport, FunnelReport, GetModelStatus, ListModels) made with the visitor's own API key, so the
page shows exactly what the RPCs return and the server's auth interceptor decides who may see it.
`figures.py` makes the calls, `rules.py` is the shape of the merchandising-rules section,
`charts.py` draws inline SVG, `page.py` writes the HTML, `http.py` serves it.
"""
