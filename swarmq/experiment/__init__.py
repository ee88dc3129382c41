"""The experiment as the user writes it: the YAML file (`file`) validated into `config` (its `sections`, with
the `bounds` they share), its identity (`identity`), the issues it selects (`dataset`), and the job plan with
its seeds (`plan`). Pure, apart from reading files and datasets."""
