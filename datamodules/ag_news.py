"""AG News topics (Zhang et al. 2015): 120k train, 7.6k test, 4 balanced classes."""

from datamodules.classification import TextClassificationDataModule


class AGNewsDataModule(TextClassificationDataModule):
    """AG News from the hub (`fancyzhx/ag_news`) or a local copy, e.g. the original CSV files.

    Every other option is TextClassificationDataModule's; `--help` lists them all.
    """

    def __init__(
        self,
        tokenizer: str,
        label_names: list[str] = ["World", "Sports", "Business", "Sci/Tech"],
        dataset: str | None = "fancyzhx/ag_news",
        **options,
    ):
        super().__init__(tokenizer=tokenizer, label_names=label_names, dataset=dataset, **options)
