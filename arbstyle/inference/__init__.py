"""Using a trained model: the `Stylizer` API (exported as `arbstyle.Stylizer`) with exact tiled inference, the
`stylize` / `embed` / `demo` commands, styles learned for one painting (`arbstyle learn`), and video."""
