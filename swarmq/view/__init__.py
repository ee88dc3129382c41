"""The experiment viewer: what `swarmq view` serves, `swarmq report --html` writes as one file and
`swarmq show` prints.

Reads (`reads`) turn Postgres rows into typed view models (`models`) in pure page builders (`pages`); the web
app (`web`), the one-file report (`bundle`) and the terminal page (`terminal`) only render those models.
Nothing here writes a job or an outcome.
"""
