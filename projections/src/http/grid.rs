//! `GET /api/v1/grid`: the grid as the dashboard draws it — districts → communities →
//! buildings with their names, in code order.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wangge_engine::grid::GridDirectory;
use wangge_schemas::Tier;

use super::error::ApiErrorBody;
use super::state::ApiState;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GridTree {
    pub city: String,
    pub districts: Vec<GridDistrict>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GridDistrict {
    pub code: String,
    pub name: String,
    pub supervisor: String,
    pub communities: Vec<GridCommunity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GridCommunity {
    pub code: String,
    pub name: String,
    pub supervisor: String,
    pub buildings: Vec<GridBuilding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GridBuilding {
    pub code: String,
    pub name: String,
}

impl GridTree {
    /// The tree of a grid, every level in code order.
    pub fn of(grid: &GridDirectory) -> Self {
        let children = |parent: &str, tier: Tier| {
            let mut cells: Vec<_> = grid
                .cells()
                .filter(|c| c.tier == tier && c.parent.as_deref() == Some(parent))
                .collect();
            cells.sort_by(|a, b| a.code.cmp(&b.code));
            cells
        };
        let mut districts: Vec<_> = grid.districts().collect();
        districts.sort_by(|a, b| a.code.cmp(&b.code));
        Self {
            city: grid.city().to_owned(),
            districts: districts
                .into_iter()
                .map(|district| GridDistrict {
                    code: district.code.clone(),
                    name: district.name.clone(),
                    supervisor: district.supervisor.clone(),
                    communities: children(&district.code, Tier::Community)
                        .into_iter()
                        .map(|community| GridCommunity {
                            code: community.code.clone(),
                            name: community.name.clone(),
                            supervisor: community.supervisor.clone(),
                            buildings: children(&community.code, Tier::Building)
                                .into_iter()
                                .map(|building| GridBuilding {
                                    code: building.code.clone(),
                                    name: building.name.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The grid: districts → communities → buildings.
#[utoipa::path(
    get,
    path = "/api/v1/grid",
    tag = "grid",
    responses(
        (status = 200, description = "The grid tree, every level in code order", body = GridTree),
        (status = 400, description = "A parameter was given", body = ApiErrorBody),
    )
)]
pub async fn grid_tree(
    State(state): State<ApiState>,
    _: super::extract::ApiQuery<NoParameters>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    Json(&*state.grid_tree()).into_response()
}

/// The query of an endpoint that takes no parameters.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoParameters {}
