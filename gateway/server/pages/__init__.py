"""Pages for people: the home page, and GraphiQL from pinned, verified npm packages."""
