"""Where a model's weights come from: the pinned, verified weights cache (`arbstyle weights`), the registry that
turns a name or a training workdir into a ready model (`arbstyle.load_model`), the readers and converters that turn
released weight files into our networks' parameters, and the weights trained here."""
