"""One module per dashboard section: a request in, a template and its context out."""
