"""Streaming SAM 2: one frame at a time, memory written every K frames into a bounded, pruned bank.

Each foreground class is one SAM 2 object with its own bank (or, for instance tracking, each object key given to
`start` / `condition_on_objects` / `step_objects`): conditioning frames (the seed, always kept, plus at most
M-1 re-prompted / mask-conditioned frames), at most N ordinary memories (pruned `fifo` or `similarity`), and the
object pointers of the last `max_obj_ptrs - 1` frames. A frame's memory is committed when the next frame arrives, so
`reprompt` and `condition_on_mask` can replace it first. Nothing grows with the number of frames seen.

Inputs: an HxWx3 uint8 RGB frame (letterboxed into S x S and normalised exactly like the graph's Preproc) or an
already preprocessed (1,3,S,S) float tensor. Prompts and masks are in the pixels of their own image and are mapped
into S x S by the same letterbox (the identity when they were made on the S x S model input).

With `memory.every=1`, `memory.max_memories=6`, `fifo` and `model.postprocessing=False` the logits equal the official
`SAM2VideoPredictor` (same weights, frames and prompts). Ordinary memories get SAM 2's temporal encodings by recency
rank (newest first); ranks beyond SAM 2's six slots reuse the oldest slot.

The heavy module calls (image encoder, memory attention, decoder heads, memory encoder) go through `self.modules`
(`backends.SAM2Modules`: torch, ONNX Runtime or TensorRT, from `config.runtime`); the memory bank is the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import letterbox_geometry
from surgseg.engines.preprocess import mask_to_model, model_input
from surgseg.engines.sam2.backends import SAM2Modules, make_modules
from surgseg.engines.sam2.config import SAM2Config
from surgseg.engines.sam2.model import build_sam2_model
from surgseg.engines.sam2.prompts import ClassPrompts, Prompt

NO_OBJ_SCORE = -1024.0
BOX_LABELS = (2, 3)


@dataclass
class StreamOutput:
    """Per foreground class (index c-1 for class c): low-res logits (S/4 x S/4, > 0 inside), object score, absent."""

    frame_index: int
    logits: torch.Tensor
    object_scores: torch.Tensor
    absent: tuple[bool, ...]


@dataclass
class _Entry:
    """One stored frame of one object: memory features (bf16), object pointer, object score."""

    frame: int
    features: torch.Tensor
    obj_ptr: torch.Tensor
    score: float


@dataclass
class _Pending:
    """The newest frame's result, committed to the bank when the next frame arrives."""

    frame: int
    low_res: torch.Tensor
    high_res: torch.Tensor
    score_logits: torch.Tensor
    obj_ptr: torch.Tensor
    cond: bool
    from_points: bool
    encode: bool


@dataclass
class _ObjectBank:
    cond: list[_Entry] = field(default_factory=list)  # cond[0] is the seed
    memories: list[_Entry] = field(default_factory=list)  # ascending frame order
    pointers: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> pointer, recent window only
    pending: _Pending | None = None
    nonpositive_run: int = 0


@dataclass
class _Features:
    vision_feats: list[torch.Tensor]  # (HW, 1, C) per level
    vision_pos: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]

    def top(self) -> torch.Tensor:
        x, (h, w) = self.vision_feats[-1], self.feat_sizes[-1]
        return x.permute(1, 2, 0).reshape(x.size(1), x.size(2), h, w)

    def high_res(self) -> list[torch.Tensor] | None:
        if len(self.vision_feats) == 1:
            return None
        return [x.permute(1, 2, 0).reshape(x.size(1), x.size(2), *s)
                for x, s in zip(self.vision_feats[:-1], self.feat_sizes[:-1])]


def prune_victim(features: list[torch.Tensor], newest: torch.Tensor, policy: str) -> int:
    """Index of the entry to drop from a full bank: the oldest (`fifo`) or the most cosine-similar to `newest`."""
    if policy == "fifo":
        return 0
    stacked = torch.stack([f.float().flatten() for f in features])
    sims = F.cosine_similarity(stacked, newest.float().flatten()[None], dim=1)
    return int(torch.argmax(sims))


class StreamingSAM2:
    """Frame-by-frame SAM 2 tracking of every prompted foreground class with bounded memory."""

    def __init__(self, config: SAM2Config, device: str = "cpu", model: torch.nn.Module | None = None,
                 modules: SAM2Modules | None = None) -> None:
        """`modules` runs the heavy SAM 2 calls; default: the backend `config.runtime` names (see `backends`)."""
        self.config = config
        self.memory = config.memory
        self.model = model if model is not None else build_sam2_model(config.model, device)
        self.image_size = int(self.model.image_size)
        if self.image_size != config.model.image_size:
            raise InputError(f"model.image_size: {config.model.image_size} but the model was built for "
                             f"{self.image_size}")
        self.device = torch.device(device)
        self.modules = modules if modules is not None else make_modules(self.model, config, device)
        self._num_classes = 0
        self._banks: dict[int, _ObjectBank] = {}
        self._frame = -1
        self._features: _Features | None = None
        self._maskmem_pos: torch.Tensor | None = None

    # ---------------------------------------------------------------- inputs
    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> (1,3,S,S) float32: letterboxed and ImageNet-normalised exactly as the graph's Preproc."""
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
            raise InputError(f"frame: expected HxWx3 uint8 RGB, got {getattr(frame, 'shape', type(frame))}")
        image, _ = model_input(frame, (self.image_size, self.image_size))
        return torch.from_numpy(image).to(self.device)

    def _as_input(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A raw frame (see `preprocess`) or an already preprocessed (1,3,S,S) float tensor."""
        if isinstance(frame, torch.Tensor):
            s = self.image_size
            if tuple(frame.shape) != (1, 3, s, s) or not frame.is_floating_point():
                raise InputError(f"image: expected a (1,3,{s},{s}) float tensor, "
                                 f"got {tuple(frame.shape)} {frame.dtype}")
            return frame.to(self.device, torch.float32)
        return self.preprocess(frame)

    # ---------------------------------------------------------------- public API
    @torch.inference_mode()
    def seed(self, frame: np.ndarray | torch.Tensor, prompts: ClassPrompts) -> StreamOutput:
        """Start tracking from scratch on `frame` (index 0) with one object per prompted class."""
        if not prompts.classes:
            raise InputError("prompts: no class has a prompt to seed from")
        self._num_classes = prompts.num_classes
        self._banks = {}
        self._frame = 0
        self._features = self._encode(self._as_input(frame))
        for class_id in sorted(prompts.classes):
            self._banks[class_id] = _ObjectBank()
            self._start_object(class_id, prompts)
        return self._emit(update_absence=False)

    @torch.inference_mode()
    def step(self, frame: np.ndarray | torch.Tensor) -> StreamOutput:
        """Track every object into the next frame."""
        self._advance(frame)
        return self._emit(update_absence=True)

    @torch.inference_mode()
    def start(self, frame: np.ndarray | torch.Tensor, num_classes: int) -> None:
        """Start from scratch on `frame` (index 0) with no object yet: objects join with `condition_on_objects`
        (instance tracking, where an object is one instrument keyed by its track id, not a class)."""
        self._num_classes = num_classes
        self._banks = {}
        self._frame = 0
        self._features = self._encode(self._as_input(frame))

    @torch.inference_mode()
    def step_objects(self, frame: np.ndarray | torch.Tensor) -> dict[int, tuple[torch.Tensor, float]]:
        """Track every object into the next frame: per object key, its low-res logits (S/4 x S/4) and score."""
        self._advance(frame)
        return self.object_outputs()

    def object_outputs(self) -> dict[int, tuple[torch.Tensor, float]]:
        """Per object key, the newest frame's low-res logits (S/4 x S/4, > 0 inside) and object score."""
        return {key: (bank.pending.low_res[0, 0], float(bank.pending.score_logits.reshape(-1)[0]))
                for key, bank in sorted(self._banks.items()) if bank.pending is not None}

    @torch.inference_mode()
    def condition_on_objects(self, masks: dict[int, np.ndarray]) -> None:
        """Use binary HxW masks of the newest frame (letterboxed like `condition_on_mask`) as the output and
        conditioning input of the objects they key; a new key starts an object."""
        self._require_seed()
        for key, mask in sorted(masks.items()):
            boxed = mask_to_model(np.asarray(mask, np.uint8), (self.image_size, self.image_size))
            self._condition(key, torch.from_numpy(boxed > 0).to(self.device))

    @torch.inference_mode()
    def reprompt(self, prompts: ClassPrompts) -> StreamOutput:
        """Re-prompt the newest frame for the prompted classes, keeping memory; the frame becomes conditioning.
        A class not tracked yet starts there (its seed); re-prompting clears a class's absent state."""
        self._require_seed()
        self._check_classes(prompts.num_classes)
        for class_id in sorted(prompts.classes):
            bank = self._banks.get(class_id)
            if bank is None or not bank.cond:
                self._banks[class_id] = _ObjectBank()
                self._start_object(class_id, prompts)
                continue
            points = self._point_inputs(prompts.merged(class_id), prompts)
            low, high, ptr, score = self._decode(bank, point_inputs=points)
            bank.pending = _Pending(self._frame, low, high, score, ptr, cond=True, from_points=True, encode=True)
            bank.nonpositive_run = 0
        return self._emit(update_absence=False)

    @torch.inference_mode()
    def condition_on_mask(self, mask: np.ndarray, include_empty: bool = False) -> StreamOutput:
        """Use a (refined) HxW class-id mask of the newest frame as its output and conditioning input: the source
        frame's mask (letterboxed like Preproc) or one on the S x S model input. Empty classes are skipped unless
        `include_empty`."""
        self._require_seed()
        if mask.ndim != 2:
            raise InputError(f"mask: expected HxW class ids, got shape {mask.shape}")
        if mask.size and int(mask.max()) >= self._num_classes:
            raise InputError(f"mask: class id {int(mask.max())} >= num_classes {self._num_classes}")
        boxed = torch.from_numpy(mask_to_model(np.asarray(mask), (self.image_size, self.image_size)))
        for class_id in range(1, self._num_classes):
            binary = (boxed == class_id).to(self.device)
            if not include_empty and not bool(binary.any()):
                continue
            self._condition(class_id, binary)
        return self._emit(update_absence=False)

    def _condition(self, key: int, binary: torch.Tensor) -> None:
        """An S x S boolean mask as object `key`'s output and conditioning input on the newest frame."""
        feats = self._features
        low, high, ptr, score = self.modules.mask_as_output(feats.top(), feats.high_res(), binary[None, None].float())
        bank = self._banks.setdefault(key, _ObjectBank())
        bank.pending = _Pending(self._frame, low, high, score, ptr, cond=True, from_points=False, encode=True)
        bank.nonpositive_run = 0

    def forget(self, class_id: int) -> None:
        """Stop tracking a class (or an object key): its memory bank is dropped (a later seed, reprompt or mask
        starts it afresh)."""
        self._banks.pop(class_id, None)

    @torch.inference_mode()
    def image_logits(self, frame: np.ndarray | torch.Tensor, prompts: ClassPrompts) -> StreamOutput:
        """SAM 2 in image mode (no memory, state untouched): the logits a seed on this frame would give."""
        features = self._encode(self._as_input(frame))
        count = prompts.num_classes - 1
        s4 = self.image_size // 4
        logits = torch.full((count, s4, s4), NO_OBJ_SCORE, device=self.device)
        scores = torch.full((count,), NO_OBJ_SCORE, device=self.device)
        for class_id in sorted(prompts.classes):
            points = self._point_inputs(prompts.merged(class_id), prompts)
            low, _, _, score = self._decode_init(features, points)
            logits[class_id - 1] = low[0, 0]
            scores[class_id - 1] = score.reshape(())
        return StreamOutput(frame_index=-1, logits=logits, object_scores=scores,
                            absent=tuple(bool(s <= 0) for s in scores.tolist()))

    # ---------------------------------------------------------------- introspection
    @property
    def frame_index(self) -> int:
        return self._frame

    def memory_state(self) -> dict[int, dict[str, list]]:
        """Per class: committed conditioning/memory/pointer frame indices and the stored entries' object scores."""
        state = {}
        for class_id, bank in sorted(self._banks.items()):
            state[class_id] = {
                "cond_frames": [e.frame for e in bank.cond],
                "memory_frames": [e.frame for e in bank.memories],
                "memory_scores": [e.score for e in bank.memories],
                "cond_scores": [e.score for e in bank.cond],
                "pointer_frames": sorted(bank.pointers),
                "pending_frame": bank.pending.frame if bank.pending else None,
            }
        return state

    def stored_entries(self) -> int:
        """Stored memory items over all classes (conditioning frames + memories + pointers): bounded."""
        return sum(len(b.cond) + len(b.memories) + len(b.pointers) for b in self._banks.values())

    # ---------------------------------------------------------------- internals
    def _advance(self, frame: np.ndarray | torch.Tensor) -> None:
        """Commit the newest frame and decode every object on the next one."""
        self._require_seed()
        self._commit_all()
        self._frame += 1
        self._features = self._encode(self._as_input(frame))
        write = self.memory.max_memories > 0 and self._frame % self.memory.every == 0
        for bank in self._banks.values():
            low, high, ptr, score = self._decode(bank, point_inputs=None)
            bank.pending = _Pending(self._frame, low, high, score, ptr, cond=False, from_points=False, encode=write)

    def _require_seed(self) -> None:
        if self._frame < 0 or self._features is None:
            raise RuntimeError("StreamingSAM2: call seed(frame, prompts) first")

    def _check_classes(self, num_classes: int) -> None:
        if num_classes != self._num_classes:
            raise InputError(f"prompts: num_classes {num_classes} differs from the seed's {self._num_classes}")

    def _encode(self, image: torch.Tensor) -> _Features:
        return _Features(*self.modules.encode_image(image))

    def _point_inputs(self, prompt: Prompt | None, prompts: ClassPrompts) -> dict[str, torch.Tensor]:
        """SAM 2 point inputs: box corners (labels 2, 3) then the points, letterboxed from the prompts' image size
        into S x S as Preproc maps that image (identity for prompts made on the S x S model input)."""
        if prompt is None:
            raise InputError("prompts: class has no prompt")
        coords = [prompt.box[:2], prompt.box[2:], *prompt.points]
        labels = [*BOX_LABELS, *prompt.labels]
        g = letterbox_geometry((prompts.height, prompts.width), (self.image_size, self.image_size))
        scale = torch.tensor([g.resized_w / g.source_w, g.resized_h / g.source_h])
        xy = torch.tensor(coords, dtype=torch.float32) * scale + torch.tensor([float(g.left), float(g.top)])
        return {"point_coords": xy[None].to(self.device),
                "point_labels": torch.tensor([labels], dtype=torch.int32, device=self.device)}

    def _start_object(self, class_id: int, prompts: ClassPrompts) -> None:
        bank = self._banks[class_id]
        points = self._point_inputs(prompts.merged(class_id), prompts)
        low, high, ptr, score = self._decode_init(self._features, points)
        bank.pending = _Pending(self._frame, low, high, score, ptr, cond=True, from_points=True, encode=True)

    def _decode_init(self, feats: _Features, points: dict[str, torch.Tensor]):
        pix = self.model._prepare_memory_conditioned_features(
            frame_idx=0, is_init_cond_frame=True, current_vision_feats=feats.vision_feats[-1:],
            current_vision_pos_embeds=feats.vision_pos[-1:], feat_sizes=feats.feat_sizes[-1:],
            output_dict=None, num_frames=None)
        return self._heads(pix, feats, points, is_init=True)

    def _decode(self, bank: _ObjectBank, point_inputs: dict[str, torch.Tensor] | None):
        """Memory-conditioned decode of the newest frame for one object."""
        pix = self._memory_conditioned(bank, self._features)
        return self._heads(pix, self._features, point_inputs, is_init=False)

    def _heads(self, pix: torch.Tensor, feats: _Features, points, is_init: bool):
        return self.modules.heads(pix, feats.high_res(), points, self.model._use_multimask(is_init, points))

    def _memory_conditioned(self, bank: _ObjectBank, feats: _Features) -> torch.Tensor:
        """Current features fused (memory attention) with the object's conditioning frames, memories, pointers."""
        model = self.model
        t = self._frame
        num_maskmem = model.num_maskmem
        memory, memory_pos = [], []
        ranked = [(num_maskmem - 1, e) for e in bank.cond]
        count = len(bank.memories)
        ranked += [(min(count - 1 - i, num_maskmem - 2), e) for i, e in enumerate(bank.memories)]
        for tpos_index, entry in ranked:
            memory.append(entry.features.to(self.device).float().flatten(2).permute(2, 0, 1))
            pos = self._maskmem_pos.flatten(2).permute(2, 0, 1)
            memory_pos.append(pos + model.maskmem_tpos_enc[tpos_index])
        num_ptr_tokens = 0
        if model.use_obj_ptrs_in_encoder:
            ptrs = [(t - e.frame, e.obj_ptr) for e in bank.cond]
            window = self.memory.max_obj_ptrs - 1
            ptrs += [(t - f, bank.pointers[f]) for f in sorted(bank.pointers, reverse=True) if t - f <= window]
            if ptrs:
                tokens, token_pos = self._pointer_tokens(ptrs)
                memory.append(tokens)
                memory_pos.append(token_pos)
                num_ptr_tokens = tokens.shape[0]
        fused = self.modules.memory_attention(feats.vision_feats[-1], feats.vision_pos[-1], torch.cat(memory, dim=0),
                                              torch.cat(memory_pos, dim=0), num_ptr_tokens)
        h, w = feats.feat_sizes[-1]
        return fused.permute(1, 2, 0).reshape(1, model.hidden_dim, h, w)

    def _pointer_tokens(self, ptrs: list[tuple[int, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Object pointers as memory tokens with SAM 2's temporal encoding (split into mem_dim-sized tokens)."""
        from sam2.modeling.sam2_utils import get_1d_sine_pe

        model = self.model
        c, mem_dim = model.hidden_dim, model.mem_dim
        distances, vectors = zip(*ptrs)
        tokens = torch.stack(vectors, dim=0)  # (P, 1, C)
        if model.add_tpos_enc_to_obj_ptrs:
            t_diff_max = model.max_obj_ptrs_in_encoder - 1
            tpos_dim = c if model.proj_tpos_enc_in_obj_ptrs else mem_dim
            rel = torch.tensor(distances, device=self.device)
            if not model.use_signed_tpos_enc_to_obj_ptrs:
                rel = rel.abs()
            pos = model.obj_ptr_tpos_proj(get_1d_sine_pe(rel / t_diff_max, dim=tpos_dim))
            pos = pos.unsqueeze(1).expand(-1, 1, mem_dim)
        else:
            pos = tokens.new_zeros(len(distances), 1, mem_dim)
        if mem_dim < c:
            split = c // mem_dim
            tokens = tokens.reshape(-1, 1, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(split, dim=0)
        return tokens, pos

    def _commit_all(self) -> None:
        for bank in self._banks.values():
            if bank.pending is not None:
                self._commit(bank, bank.pending)
                bank.pending = None
            window = self.memory.max_obj_ptrs - 1
            for f in [f for f in bank.pointers if self._frame + 1 - f > window]:
                del bank.pointers[f]

    def _commit(self, bank: _ObjectBank, p: _Pending) -> None:
        """Store the pending frame: its pointer, and its memory (encoded now) when due, pruning to the bounds."""
        if not p.encode:
            bank.pointers[p.frame] = p.obj_ptr
            return
        entry = _Entry(p.frame, self._encode_memory(p), p.obj_ptr, float(p.score_logits.reshape(-1)[0]))
        if p.cond:
            self._add_cond(bank, entry)
        else:
            bank.pointers[p.frame] = p.obj_ptr
            self._add_memory(bank, entry)

    def _encode_memory(self, p: _Pending) -> torch.Tensor:
        """SAM 2's memory encoder on the pending mask; stored in bfloat16 as the video predictor does."""
        features, pos = self.modules.encode_memory(self._features.vision_feats[-1], p.high_res, p.score_logits,
                                                   p.from_points)
        if self._maskmem_pos is None:
            self._maskmem_pos = pos[0:1].float().clone()
        return features.to(torch.bfloat16)

    def _add_cond(self, bank: _ObjectBank, entry: _Entry) -> None:
        bank.memories = [e for e in bank.memories if e.frame != entry.frame]
        bank.pointers.pop(entry.frame, None)
        if len(bank.cond) < self.memory.max_cond_frames:
            bank.cond.append(entry)
            return
        if len(bank.cond) == 1:  # M = 1: only the seed is conditioning; keep this frame as ordinary memory
            bank.pointers[entry.frame] = entry.obj_ptr
            if self.memory.max_memories > 0:
                self._add_memory(bank, entry)
            return
        evicted = bank.cond.pop(1)  # the oldest conditioning frame after the seed
        bank.pointers[evicted.frame] = evicted.obj_ptr
        bank.cond.append(entry)

    def _add_memory(self, bank: _ObjectBank, entry: _Entry) -> None:
        if len(bank.memories) >= self.memory.max_memories:
            victim = prune_victim([e.features for e in bank.memories], entry.features, self.memory.pruning)
            del bank.memories[victim]
        bank.memories.append(entry)

    def _emit(self, update_absence: bool) -> StreamOutput:
        count = self._num_classes - 1
        s4 = self.image_size // 4
        logits = torch.full((count, s4, s4), NO_OBJ_SCORE, device=self.device)
        scores = torch.full((count,), NO_OBJ_SCORE, device=self.device)
        absent = [True] * count
        for class_id, bank in self._banks.items():
            if bank.pending is None:
                continue
            score = float(bank.pending.score_logits.reshape(-1)[0])
            if update_absence:
                bank.nonpositive_run = bank.nonpositive_run + 1 if score <= 0 else 0
            gone = bank.nonpositive_run >= self.config.seeding.absent_after
            absent[class_id - 1] = gone
            scores[class_id - 1] = score
            if not gone:
                logits[class_id - 1] = bank.pending.low_res[0, 0]
        return StreamOutput(self._frame, logits, scores, tuple(absent))
