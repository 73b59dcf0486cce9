"""The latent concepts of the synthetic world: object classes, environments, activities, and their captions.

Every number here is a physical property that some modality renders: an object's colour and silhouette
(image), material temperature (thermal), relief (depth) and sound signature (audio); an environment's palette
and geometry (image, depth), surface temperatures (thermal) and ambience (audio); an activity's gait (video
and IMU). Classes are deliberately far apart in every modality so that tiny models can learn them in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ObjectClass:
    """An object kind. `shape` and `sound` name the silhouette in objects.py and the signature in sound.py."""

    name: str
    colour: str  # the colour word some captions use
    rgb: RGB
    shape: str
    material: str
    temperature_c: float  # characteristic surface temperature of the material in use
    relief_m: float  # how far the centre bulges towards the camera (round objects more than flat ones)
    sound: str


@dataclass(frozen=True)
class Environment:
    """A place. Colours are muted so that the saturated object colours always stand out."""

    name: str
    where: str  # the phrase captions use: "in the kitchen", "on the street"
    indoor: bool
    scenery_m: tuple[float, float]  # range of distances of the walls / scenery around the camera
    floor_rgb: tuple[RGB, RGB]
    wall_rgb: tuple[RGB, RGB]
    sky_rgb: RGB  # ceiling colour indoors
    floor_temp_c: float
    wall_temp_c: float
    sky_temp_c: float  # ceiling indoors; the cold radiative temperature of the clear sky outdoors
    feature_temp_c: float  # the environment's thermal landmark: oven, tree trunks, windows, sea
    ambience: str  # noise colour of the ambience in sound.py
    ambience_level: float
    reverb_rt60_s: float  # 0 = open air
    echo_s: float  # slap-back echo delay of nearby facades (0 = none)


@dataclass(frozen=True)
class Activity:
    """An ego-motion pattern of the camera wearer. Angles in radians, lengths in metres.

    Signs follow the IMU frame (x right, y up, z towards the wearer; the camera looks along -z): a positive
    yaw rate turns left, a positive roll lowers the left ear, a negative pitch looks down.
    """

    name: str  # also the caption phrase: "someone {name} in the kitchen"
    speed_m_s: float
    step_hz: float  # 0: no gait
    bob_m: float  # vertical head oscillation per step
    yaw_rate: float
    roll: float
    pitch: float
    climb_m_per_step: float
    eye_height_m: float

    @property
    def seated(self) -> bool:
        """No gait: the wearer sits, so the knees are in view."""
        return self.step_hz == 0


OBJECTS: tuple[ObjectClass, ...] = (
    ObjectClass("kettle", "red", (215, 35, 35), "kettle", "steel", 92.0, 0.14, "whistle"),
    ObjectClass("bell", "yellow", (240, 205, 25), "bell", "brass", 13.0, 0.12, "bell"),
    ObjectClass("clock", "white", (242, 242, 242), "clock", "plastic", 29.0, 0.03, "ticks"),
    ObjectClass("drum", "blue", (35, 75, 225), "drum", "sun-warmed hide", 33.0, 0.16, "thumps"),
    ObjectClass("air conditioner", "cyan", (35, 205, 215), "slats", "frosted aluminium", -6.0, 0.05, "hum"),
    ObjectClass("cat", "orange", (250, 135, 20), "cat", "fur", 38.0, 0.12, "meow"),
    ObjectClass("alarm", "pink", (235, 45, 180), "star", "hot lamp glass", 62.0, 0.05, "siren"),
    ObjectClass("frog", "green", (70, 205, 55), "frog", "wet skin", 15.0, 0.12, "croak"),
    ObjectClass("guitar", "purple", (130, 55, 200), "guitar", "hand-warmed wood", 31.0, 0.06, "pluck"),
    ObjectClass("phone", "black", (28, 28, 34), "phone", "glass and battery", 35.0, 0.02, "ring"),
)

ENVIRONMENTS: tuple[Environment, ...] = (
    Environment(
        "kitchen", "in the kitchen", True, (2.6, 3.4),
        floor_rgb=((232, 226, 212), (118, 124, 136)), wall_rgb=((226, 212, 176), (150, 106, 66)),
        sky_rgb=(238, 236, 228), floor_temp_c=19.0, wall_temp_c=21.0, sky_temp_c=23.0, feature_temp_c=48.0,
        ambience="pink", ambience_level=0.06, reverb_rt60_s=0.45, echo_s=0.0,
    ),
    Environment(
        "forest", "in the forest", False, (5.0, 8.0),
        floor_rgb=((96, 80, 50), (70, 86, 44)), wall_rgb=((46, 92, 50), (84, 62, 42)),
        sky_rgb=(196, 212, 218), floor_temp_c=6.0, wall_temp_c=4.0, sky_temp_c=-25.0, feature_temp_c=3.0,
        ambience="wind", ambience_level=0.10, reverb_rt60_s=0.2, echo_s=0.0,
    ),
    Environment(
        "street", "on the street", False, (7.0, 9.5),
        floor_rgb=((86, 86, 92), (228, 228, 218)), wall_rgb=((178, 166, 150), (138, 140, 152)),
        sky_rgb=(150, 186, 226), floor_temp_c=47.0, wall_temp_c=25.0, sky_temp_c=-30.0, feature_temp_c=16.0,
        ambience="rumble", ambience_level=0.15, reverb_rt60_s=0.3, echo_s=0.08,
    ),
    Environment(
        "beach", "at the beach", False, (5.0, 7.5),
        floor_rgb=((226, 206, 160), (200, 180, 136)), wall_rgb=((62, 138, 168), (120, 176, 196)),
        sky_rgb=(178, 212, 240), floor_temp_c=44.0, wall_temp_c=18.0, sky_temp_c=-35.0, feature_temp_c=25.0,
        ambience="surf", ambience_level=0.12, reverb_rt60_s=0.0, echo_s=0.0,
    ),
)

ACTIVITIES: tuple[Activity, ...] = (
    Activity("walking", 1.3, 1.9, 0.025, 0.0, 0.0, -0.2, 0.0, 1.6),
    Activity("running", 3.2, 2.8, 0.06, 0.0, 0.0, 0.0, 0.0, 1.6),
    Activity("turning left", 0.5, 1.6, 0.015, 1.15, 0.15, -0.10, 0.0, 1.6),
    Activity("turning right", 0.5, 1.6, 0.015, -1.15, -0.15, -0.10, 0.0, 1.6),
    Activity("climbing stairs", 0.48, 1.7, 0.02, 0.0, 0.0, -0.38, 0.17, 1.6),
    Activity("sitting still", 0.0, 0.0, 0.0, 0.0, 0.0, -0.30, 0.0, 1.2),
)

# {thing} is "a kettle", {coloured} is "a red kettle" / "an orange cat".
OBJECT_TEMPLATES = (
    "a photo of {thing}.",
    "a picture of {coloured}.",
    "{thing}.",
    "a photo of {thing} {where}.",
    "{thing} {where}.",
    "a picture of {coloured} {where}.",
    "there is {thing} {where}.",
    "a close-up photo of {thing} seen {where}.",
    "{coloured} {where}.",
    "a snapshot of {thing} {where}.",
)

ACTIVITY_TEMPLATES = (
    "a video of someone {activity}.",
    "a person is {activity}.",
    "a video of someone {activity} {where}.",
    "a first-person video of {activity} {where}.",
    "a person is {activity} {where}.",
    "an egocentric view of someone {activity} {where}.",
    "a head-mounted camera while {activity} {where}.",
)


def with_article(phrase: str) -> str:
    """'a kettle', 'an alarm', 'an orange cat'."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def object_caption(obj: ObjectClass, env: Environment, rng: np.random.Generator) -> str:
    """A caption naming the object (and mostly the environment too), from a randomly chosen template."""
    template = OBJECT_TEMPLATES[int(rng.integers(len(OBJECT_TEMPLATES)))]
    coloured = with_article(f"{obj.colour} {obj.name}")
    return template.format(thing=with_article(obj.name), coloured=coloured, where=env.where)


def activity_caption(activity: Activity, env: Environment, rng: np.random.Generator) -> str:
    """A caption naming the activity (and mostly the environment too), from a randomly chosen template."""
    template = ACTIVITY_TEMPLATES[int(rng.integers(len(ACTIVITY_TEMPLATES)))]
    return template.format(activity=activity.name, where=env.where)
