"""A user's own project: a dataset class and a model, trained by trainkit through its configs/."""
