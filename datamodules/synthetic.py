"""Generated movie reviews for the offline quickstart: no download, no third-party text.

A review's label is the polarity of its last opinion, so a model must handle negation ("was not
dull") and contrast ("X was weak, but Y was superb"), not just count words.
"""

import random

from datasets import Dataset, DatasetDict

from core.errors import at_least
from datamodules.classification import TextClassificationDataModule
from datamodules.unlabelled import unlabelled_identity

SUBJECTS = ["the movie", "this film", "the plot", "the acting", "the soundtrack", "the ending",
            "the cast", "the script", "the camera work", "the dialogue", "the pacing", "the story"]
ADJECTIVES = (
    ["dull", "awful", "boring", "clumsy", "tedious", "forgettable", "terrible", "lifeless",
     "painful", "weak", "predictable", "messy"],
    ["wonderful", "brilliant", "moving", "delightful", "superb", "gripping", "charming",
     "excellent", "memorable", "beautiful", "clever", "stunning"],
)
ADVERBS = ["", "truly ", "really ", "rather ", "quite ", "simply "]
FILLERS = ["I watched it on a rainy Sunday.", "A friend recommended it to me.",
           "It runs a little over two hours.", "I saw it in a small cinema downtown.",
           "The trailer had made me curious.", "My whole family came along.",
           "It is based on a novel I have not read.", "I went in knowing nothing about it."]


def opinion(rng: random.Random, label: int) -> str:
    """One clause whose polarity is `label`, negated half of the time."""
    subject = rng.choice(SUBJECTS)
    if rng.random() < 0.5:
        return f"{subject} was {rng.choice(ADVERBS)}{rng.choice(ADJECTIVES[label])}"
    return f"{subject} was not {rng.choice(ADJECTIVES[1 - label])}"


def review(rng: random.Random, label: int) -> str:
    verdict = opinion(rng, label)
    if rng.random() < 0.5:
        verdict = f"{opinion(rng, 1 - label)}, but {verdict}"
    sentences = rng.sample(FILLERS, rng.randint(0, 2)) + [verdict[0].upper() + verdict[1:] + "."]
    rng.shuffle(sentences)
    return " ".join(sentences)


def generate(num_samples: int, seed: int) -> Dataset:
    rng = random.Random(seed)
    labels = [i % 2 for i in range(num_samples)]
    return Dataset.from_dict({"text": [review(rng, y) for y in labels], "label": labels})


class SyntheticSentimentDataModule(TextClassificationDataModule):
    """Generated reviews (neg = 0, pos = 1); other options are TextClassificationDataModule's."""

    def __init__(
        self,
        tokenizer: str,
        num_train: int = 4000,
        num_test: int = 1000,
        label_names: list[str] = ["neg", "pos"],
        **options,
    ):
        at_least("--data.num_train", num_train, 1)
        at_least("--data.num_test", num_test, 1)
        super().__init__(tokenizer=tokenizer, label_names=label_names, **options)
        self.num_train, self.num_test = num_train, num_test

    def source_identity(self) -> dict:
        return {"synthetic": [self.num_train, self.num_test, self.hparams.seed, SUBJECTS, ADJECTIVES],
                **unlabelled_identity(self.hparams.unlabelled)}

    def load_raw(self) -> DatasetDict:
        seed = self.hparams.seed
        return DatasetDict({"train": generate(self.num_train, seed),
                            "test": generate(self.num_test, seed + 1)})
