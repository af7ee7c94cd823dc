"""Training/validation transforms for (image, prior, mask) triplets.

Spatial transforms (mild border crop, flip, scale/shift/rotation ±5°) are drawn once and applied identically to the
image, the prior (an extra albumentations mask target: nearest interpolation, channels last) and the mask;
photometric ones (brightness/contrast, Gaussian noise, motion or defocus blur, synthetic specular highlights) touch
only the image. Then everything is letterboxed to the fixed training size with `surgseg.engines.letterbox` (the
runtime Preproc uses the same function), the image is ImageNet-normalised, and the prior is perturbed (dropout to
an uninformative 0 logit, scale, noise) so the refiner learns to look at the image too.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from surgseg.engines.letterbox import letterbox
from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD, PAD_LOGIT


@dataclass(frozen=True)
class AugmentSettings:
    """Probabilities and ranges of each augmentation (training only; validation only letterboxes)."""

    border_crop: float = 0.08  # up to this fraction cut from each side
    hflip_p: float = 0.5
    affine_p: float = 0.7
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.04
    rotate_deg: float = 5.0
    brightness_contrast: float = 0.2
    brightness_contrast_p: float = 0.5
    noise_p: float = 0.3
    blur_p: float = 0.3
    specular_p: float = 0.3
    prior_dropout_p: float = 0.1
    prior_noise_std: float = 1.0
    prior_scale: tuple[float, float] = (0.7, 1.3)


class SpecularHighlights(A.ImageOnlyTransform):
    """Adds a few saturated white glints with soft edges, like light reflected off wet tissue."""

    def __init__(self, count: tuple[int, int] = (1, 4), radius: tuple[float, float] = (0.01, 0.04), p: float = 0.3):
        super().__init__(p=p)
        self.count = count
        self.radius = radius

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        n = int(self.random_generator.integers(self.count[0], self.count[1] + 1))
        diag = float(np.hypot(h, w))
        spots = [
            (
                float(self.random_generator.uniform(0, h)),
                float(self.random_generator.uniform(0, w)),
                float(self.random_generator.uniform(*self.radius)) * diag,
                float(self.random_generator.uniform(0.5, 2.0)),
            )
            for _ in range(n)
        ]
        return {"spots": spots}

    def apply(self, img: np.ndarray, spots: list[tuple[float, float, float, float]], **params) -> np.ndarray:
        h, w = img.shape[:2]
        yy, xx = np.ogrid[:h, :w]
        alpha = np.zeros((h, w), np.float32)
        for cy, cx, radius, elongation in spots:
            d2 = ((yy - cy) / radius) ** 2 + ((xx - cx) / (radius * elongation)) ** 2
            alpha = np.maximum(alpha, np.exp(-d2 * 2.0).astype(np.float32))
        out = img.astype(np.float32) * (1 - alpha[..., None]) + 255.0 * alpha[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("count", "radius")


def build_spatial_photometric(s: AugmentSettings) -> A.Compose:
    """The albumentations pipeline run at source resolution, before letterboxing."""
    border = cv2.BORDER_REFLECT_101
    return A.Compose(
        [
            A.RandomCropFromBorders(s.border_crop, s.border_crop, s.border_crop, s.border_crop, p=1.0),
            A.HorizontalFlip(p=s.hflip_p),
            A.Affine(
                scale=s.scale,
                translate_percent=(-s.translate, s.translate),
                rotate=(-s.rotate_deg, s.rotate_deg),
                border_mode=border,
                p=s.affine_p,
            ),
            A.RandomBrightnessContrast(s.brightness_contrast, s.brightness_contrast, p=s.brightness_contrast_p),
            A.GaussNoise(std_range=(0.02, 0.06), p=s.noise_p),
            A.OneOf([A.MotionBlur(blur_limit=(3, 7)), A.Defocus(radius=(1, 3), alias_blur=(0.1, 0.3))], p=s.blur_p),
            SpecularHighlights(p=s.specular_p),
        ],
        additional_targets={"prior": "mask"},
    )


def normalise_image(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB → 3×H×W float32, ImageNet mean/std."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def letterbox_triplet(
    image: np.ndarray, prior: np.ndarray, mask: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Letterbox image (H×W×3), prior (H×W×C) and mask (H×W) to `size`; returns image, prior C×H×W, mask."""
    image_lb, _ = letterbox(image, size)
    prior_lb, _ = letterbox(prior.astype(np.float32), size, pad_value=PAD_LOGIT)
    mask_lb, _ = letterbox(mask, size, interpolation=cv2.INTER_NEAREST_EXACT)
    return image_lb, np.ascontiguousarray(prior_lb.reshape(*size, -1).transpose(2, 0, 1)), mask_lb


def perturb_prior(prior: np.ndarray, rng: np.random.Generator, s: AugmentSettings) -> np.ndarray:
    """Prior dropout (all-zero logits), a random confidence scale and additive noise."""
    if rng.random() < s.prior_dropout_p:
        return np.zeros_like(prior)
    scaled = prior * np.float32(rng.uniform(*s.prior_scale))
    std = rng.uniform(0.0, s.prior_noise_std)
    return (scaled + rng.normal(0.0, std, prior.shape)).astype(np.float32)


class TripletTransform:
    """(image H×W×3 uint8, prior C×H×W logits, mask H×W uint8) → network-ready arrays at `size`."""

    def __init__(self, size: tuple[int, int], train: bool, settings: AugmentSettings | None = None) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.train = train
        self.settings = settings or AugmentSettings()
        self.pipeline = build_spatial_photometric(self.settings) if train else None

    def __call__(
        self, image: np.ndarray, prior: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (3×H×W float32 normalised image, C×H×W float32 prior logits, H×W uint8 mask)."""
        prior_hwc = np.ascontiguousarray(prior.astype(np.float32).transpose(1, 2, 0))
        if self.pipeline is not None:
            self.pipeline.set_random_seed(int(rng.integers(2**31)))
            out = self.pipeline(image=image, mask=mask, prior=prior_hwc)
            image, mask, prior_hwc = out["image"], out["mask"], out["prior"]
        image, prior_chw, mask = letterbox_triplet(image, prior_hwc, mask, self.size)
        if self.train:
            prior_chw = perturb_prior(prior_chw, rng, self.settings)
        return normalise_image(image), prior_chw, mask
