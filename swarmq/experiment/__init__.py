"""The experiment as the user writes it: the YAML file (`config`), the issues it selects (`dataset`), and the
job plan with its seeds (`plan`). Pure, apart from reading files and datasets."""
