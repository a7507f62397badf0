"""Server-rendered pages: what the console's, the billing center's and the operator's
pages share (layout, languages, cookies, CSRF, tables). Imports neither side."""
