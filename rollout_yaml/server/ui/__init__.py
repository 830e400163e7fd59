"""`/ui`: the pages for people. Operators see every consumer's runs; a consumer sees its own
portal (`/ui/embed`), made to sit in an iframe of the partner's app."""
