"""A person's data: forget a device, export it, keep raw audio only as long as it is needed
(docs/operations.md, "A person's data")."""
