"""Per-model step schedules: a dynamic-programming search over a fine grid of timesteps.

The sampling trajectories of a trained model are regular: they bend in much the same way
for every starting noise, so the steps that integrate a few hundred of them best also
serve the rest. The search (GITS, Chen et al. 2024) runs a fine, accurate "teacher"
trajectory for each of `initial_noise`'s images (iPNDM on `grid_size` `"karras"` steps),
prices every jump i → j of the grid by the error of one DDIM (Euler) step from the
teacher's state at i against its state at j, and picks the `num_steps` jumps from the
first grid index to the clean data with the least total price (a shortest path with a
fixed number of edges, O(num_steps · grid_size²)).

References:
    - Chen, Zhou, Ye, Zhou, Chen & Lyu, "On the Trajectory Regularity of ODE-based
      Diffusion Sampling", ICML 2024 (GITS: the cost matrix and its dynamic program).
"""

import numpy as np
from keras import ops

from keras_ddpm.samplers.ipndm import ipndm_step
from keras_ddpm.samplers.loop import per_image
from keras_ddpm.samplers.loop import x0_estimate
from keras_ddpm.samplers.spacing import timestep_sequence

# The teacher: iPNDM of this order on the fine grid.
TEACHER_ORDER = 3


def teacher_trajectory(denoise_fn, initial_noise, schedule, grid, prediction_type, clip):
    """States, x̂_0 and ε̂ along an iPNDM run over the indices `grid` (NumPy, float64).

    Returns:
        `(states [G + 1, N, D], x0 [G, N, D], epsilon [G, N, D])`, G = len(grid), the last
        state the clean sample.
    """
    x = ops.convert_to_tensor(initial_noise, "float32")
    batch = ops.shape(x)[0]
    history = [ops.zeros_like(x)] * 3
    states, x0s, epsilons = [], [], []
    sequence = list(grid) + [-1]
    for k, t in enumerate(grid):
        states.append(ops.convert_to_numpy(x))
        t_tensor = ops.convert_to_tensor(t, "int32")
        x0, e0 = x0_estimate(
            denoise_fn(x, per_image(t_tensor, batch)), x, schedule.alphas_cumprod_at(t_tensor),
            prediction_type, clip,
        )
        x0s.append(ops.convert_to_numpy(x0))
        epsilons.append(ops.convert_to_numpy(e0))
        order = ops.convert_to_tensor(min(TEACHER_ORDER, k + 1), "int32")
        x = ipndm_step(
            schedule, t_tensor, ops.convert_to_tensor(sequence[k + 1], "int32"), x0,
            (e0, *history), order,
        )
        history = [e0] + history[:2]
    states.append(ops.convert_to_numpy(x))
    flat = lambda values: np.stack(values).reshape(len(values), batch, -1).astype(np.float64)
    return flat(states), flat(x0s), flat(epsilons)


def jump_costs(schedule, grid, states, x0, epsilon):
    """`[G + 1, G + 1]` prices: entry (i, j), i < j, the root-mean-square error of one DDIM step
    from the teacher's state at grid point i to its state at j (j = G: the clean data); ∞ else.

    The step lands on a_j·x̂_0(i) + b_j·ε̂(i) (a_j = √ᾱ_j, b_j = √(1 − ᾱ_j)), so its squared
    distance to the state s_j expands into norms and inner products: every price comes from
    two `[G, G + 1]` matrix products, in float64, instead of G²/2 passes over the images.
    """
    size = len(grid)
    alpha_bar = np.append(schedule.alphas_cumprod[np.asarray(grid)], 1.0)
    a = np.sqrt(alpha_bar)[None, :]  # [1, G + 1]
    b = np.sqrt(1.0 - alpha_bar)[None, :]
    x0, epsilon, states = (np.reshape(v, (len(v), -1)) for v in (x0, epsilon, states))
    norm = lambda v: np.sum(v * v, axis=1)
    squared = (
        a * a * norm(x0)[:, None] + b * b * norm(epsilon)[:, None] + norm(states)[None, :]
        + 2.0 * a * b * np.sum(x0 * epsilon, axis=1)[:, None]
        - 2.0 * a * (x0 @ states.T) - 2.0 * b * (epsilon @ states.T)
    )  # [G, G + 1]
    costs = np.full((size + 1, size + 1), np.inf)
    above = np.triu(np.ones((size, size + 1), bool), k=1)  # j > i
    costs[:size][above] = np.sqrt(np.maximum(squared[above], 0.0) / x0.shape[1])
    return costs


def cheapest_path(costs, num_steps):
    """The nodes 0 = n_0 < … < n_S = G of the cheapest path of exactly S = `num_steps` jumps."""
    nodes = len(costs)
    best = np.full((num_steps + 1, nodes), np.inf)
    parent = np.zeros((num_steps + 1, nodes), int)
    best[0, 0] = 0.0
    for s in range(1, num_steps + 1):
        total = best[s - 1][:, None] + costs  # [from, to]
        parent[s] = np.argmin(total, axis=0)
        best[s] = total[parent[s], np.arange(nodes)]
    path = [nodes - 1]
    for s in range(num_steps, 0, -1):
        path.append(parent[s, path[-1]])
    return path[::-1], float(best[num_steps, nodes - 1])


def search_timesteps(denoise_fn, initial_noise, schedule, num_steps, grid_size=100,
                     prediction_type="epsilon", clip=True):
    """The `num_steps` timestep indices that integrate `denoise_fn`'s trajectories best.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: x_T of the trajectories searched over, float32 `[N, ...]`.
        schedule: the `NoiseSchedule`.
        num_steps: the steps S of the result, in [1, grid_size].
        grid_size: the fine grid's size G (`"karras"` indices; capped at T). Defaults
            to `100`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        clip: clip x̂_0 to [−1, 1] on the teacher run. Defaults to `True`.

    Returns:
        `(indices, cost)`: a tuple of S ints from T − 1 down, and the summed price of
        its jumps (root-mean-square DDIM errors).

    Example:

    >>> indices, _ = search_timesteps(denoise, noise, schedule, num_steps=10)
    """
    grid_size = min(int(grid_size), schedule.timesteps)
    if not 1 <= num_steps <= grid_size:
        raise ValueError(
            f"`num_steps` must be in [1, {grid_size}] (the search grid's size). "
            f"Received: num_steps={num_steps}."
        )
    grid = [int(i) for i in ops.convert_to_numpy(timestep_sequence(schedule, grid_size, "karras"))[:grid_size]]
    states, x0, epsilon = teacher_trajectory(
        denoise_fn, initial_noise, schedule, grid, prediction_type, clip
    )
    path, cost = cheapest_path(jump_costs(schedule, grid, states, x0, epsilon), num_steps)
    return tuple(grid[n] for n in path[:-1]), cost
