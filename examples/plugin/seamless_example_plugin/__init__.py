"""An example Seamless plugin package (docs/plugins.md): ``hold_once`` (a strategy), ``steps``
(a replay feed kind), ``jsonl_file`` (a notification channel) and ``positions`` (a dashboard
tab). It imports only the public API, ``from engine import ...`` (and Panel for the tab)."""
