"""IMDB movie-review sentiment (Maas et al. 2011): 25k train, 25k test, neg = 0, pos = 1."""

from datamodules.classification import TextClassificationDataModule


class IMDBDataModule(TextClassificationDataModule):
    """IMDB from the hub (`stanfordnlp/imdb`) or a local copy: JSON Lines or the aclImdb folders.

    Every other option is TextClassificationDataModule's; `--help` lists them all.
    """

    def __init__(
        self,
        tokenizer: str,
        label_names: list[str] = ["neg", "pos"],
        dataset: str | None = "stanfordnlp/imdb",
        **options,
    ):
        super().__init__(tokenizer=tokenizer, label_names=label_names, dataset=dataset, **options)
