"""The repository side: Actions output, GitHub settings as code, the branch flow, the back-merge,
the workflow files and render.yaml."""
