"""Live preview: the hub between pipeline and viewers, the OpenCV window, the web page and its HTTP handler."""
