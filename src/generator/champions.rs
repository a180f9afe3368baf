//! The champion pool of the simulator: real champion names with their usual role.

use crate::events::Role;

/// (champion, role) pairs; 12 per role.
pub const CHAMPIONS: &[(&str, Role)] = &[
    ("Aatrox", Role::Top),
    ("Camille", Role::Top),
    ("Darius", Role::Top),
    ("Fiora", Role::Top),
    ("Garen", Role::Top),
    ("Gnar", Role::Top),
    ("Jax", Role::Top),
    ("Malphite", Role::Top),
    ("Ornn", Role::Top),
    ("Renekton", Role::Top),
    ("Sion", Role::Top),
    ("KSante", Role::Top),
    ("LeeSin", Role::Jungle),
    ("Elise", Role::Jungle),
    ("Graves", Role::Jungle),
    ("Hecarim", Role::Jungle),
    ("JarvanIV", Role::Jungle),
    ("Kindred", Role::Jungle),
    ("Nidalee", Role::Jungle),
    ("Sejuani", Role::Jungle),
    ("Vi", Role::Jungle),
    ("Viego", Role::Jungle),
    ("XinZhao", Role::Jungle),
    ("Maokai", Role::Jungle),
    ("Ahri", Role::Mid),
    ("Azir", Role::Mid),
    ("Orianna", Role::Mid),
    ("Syndra", Role::Mid),
    ("Sylas", Role::Mid),
    ("Viktor", Role::Mid),
    ("Yasuo", Role::Mid),
    ("Zed", Role::Mid),
    ("LeBlanc", Role::Mid),
    ("Akali", Role::Mid),
    ("Taliyah", Role::Mid),
    ("Corki", Role::Mid),
    ("Aphelios", Role::Bottom),
    ("Caitlyn", Role::Bottom),
    ("Ezreal", Role::Bottom),
    ("Jhin", Role::Bottom),
    ("Jinx", Role::Bottom),
    ("Kaisa", Role::Bottom),
    ("Lucian", Role::Bottom),
    ("MissFortune", Role::Bottom),
    ("Varus", Role::Bottom),
    ("Xayah", Role::Bottom),
    ("Zeri", Role::Bottom),
    ("Ashe", Role::Bottom),
    ("Alistar", Role::Support),
    ("Braum", Role::Support),
    ("Karma", Role::Support),
    ("Leona", Role::Support),
    ("Lulu", Role::Support),
    ("Nautilus", Role::Support),
    ("Rakan", Role::Support),
    ("Rell", Role::Support),
    ("Renata", Role::Support),
    ("Thresh", Role::Support),
    ("Yuumi", Role::Support),
    ("Milio", Role::Support),
];

/// Indices into [`CHAMPIONS`] of the champions of `role`.
pub fn of_role(role: Role) -> impl Iterator<Item = usize> {
    CHAMPIONS
        .iter()
        .enumerate()
        .filter(move |(_, (_, r))| *r == role)
        .map(|(i, _)| i)
}
