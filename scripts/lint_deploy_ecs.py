"""Checks deploy/ecs/*.json (run by scripts/lint-deploy with .tools/venv/bin/python).

checkov has no framework for ECS API JSON, so this script
  1. validates every file against the ECS API model shipped with botocore (RegisterTaskDefinition,
     CreateService, RunTask input shapes: unknown keys, wrong types, missing required fields);
  2. checks the operational rules of deploy/README.md (stopTimeout, awslogs, roles, port 9464,
     health check on /healthz, non-root read-only container, rolling 100/200 deployment);
  3. writes the task definitions and services as Terraform JSON (aws_ecs_task_definition,
     aws_ecs_service) into OUT_DIR, so checkov's Terraform ECS checks run on the same settings.
Usage: python scripts/lint_deploy_ecs.py DEPLOY_ECS_DIR OUT_DIR. Prints one line per problem and
exits 1 if there is any. Offline: botocore's models are files in the package.
"""

import json
import re
import sys
from pathlib import Path

import botocore.session
from botocore.validate import ParamValidator

OPERATIONS = {
    "task-definition": "RegisterTaskDefinition",
    "service": "CreateService",
    "run-task": "RunTask",
}


def operation_of(path):
    for suffix, op in OPERATIONS.items():
        if path.stem.endswith(suffix):
            return op
    return None


def check_task_definition(name, doc, problems):
    def need(cond, msg):
        if not cond:
            problems.append(f"{name}: {msg}")

    need(doc.get("taskRoleArn", "").startswith("arn:"), "taskRoleArn must be an IAM role ARN (the etl role)")
    need(doc.get("executionRoleArn", "").startswith("arn:"), "executionRoleArn must be an IAM role ARN")
    need(doc.get("taskRoleArn") != doc.get("executionRoleArn"), "taskRoleArn and executionRoleArn must differ")
    containers = doc.get("containerDefinitions", [])
    essentials = [c for c in containers if c.get("essential", True)]
    need(len(essentials) == 1, "exactly one essential container (etl)")
    for c in containers:
        cname = f"container {c.get('name')}"
        log = c.get("logConfiguration", {})
        need(log.get("logDriver") == "awslogs", f"{cname}: logConfiguration.logDriver must be awslogs")
        for key in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
            need(key in log.get("options", {}), f"{cname}: awslogs option {key} missing")
        need(c.get("readonlyRootFilesystem") is True, f"{cname}: readonlyRootFilesystem must be true")
        need(c.get("privileged") is not True, f"{cname}: must not be privileged")
        user = str(c.get("user", ""))
        need(user != "" and not user.startswith("0") and not user.startswith("root"), f"{cname}: user must be non-root (10001:10001)")
        need(":0.1.0" in c.get("image", "") or "@sha256:" in c.get("image", ""), f"{cname}: image must carry a tag or digest")
    for c in essentials:
        cname = f"container {c.get('name')}"
        timeout = c.get("stopTimeout")
        need(isinstance(timeout, int) and 60 < timeout <= 120, f"{cname}: stopTimeout must exceed the 60 s shutdown deadline and be at most 120 (ECS maximum), got {timeout}")
        ports = [p.get("containerPort") for p in c.get("portMappings", [])]
        need(9464 in ports, f"{cname}: portMappings must expose 9464 (metrics and probes)")
        hc = " ".join(c.get("healthCheck", {}).get("command", []))
        need("/healthz" in hc and "9464" in hc, f"{cname}: healthCheck must probe http://127.0.0.1:9464/healthz")
        need(c.get("linuxParameters", {}).get("capabilities", {}).get("drop") == ["ALL"], f"{cname}: drop ALL capabilities")
        need(c.get("memory") and c.get("memoryReservation"), f"{cname}: memory and memoryReservation must be set")
        command = c.get("command", [])
        need("--config" in command and "/etc/etl/etl.toml" in command, f"{cname}: command must read --config /etc/etl/etl.toml")
        mounts = {m.get("containerPath") for m in c.get("mountPoints", [])}
        need({"/etc/etl", "/tmp"} <= mounts, f"{cname}: mount /etc/etl (configuration) and /tmp (read-only root)")


def check_service(name, doc, problems):
    dc = doc.get("deploymentConfiguration", {})
    if dc.get("minimumHealthyPercent") != 100 or dc.get("maximumPercent") != 200:
        problems.append(f"{name}: deploymentConfiguration must be minimumHealthyPercent 100 / maximumPercent 200")
    if not dc.get("deploymentCircuitBreaker", {}).get("enable"):
        problems.append(f"{name}: enable the deployment circuit breaker")
    if doc.get("networkConfiguration", {}).get("awsvpcConfiguration", {}).get("assignPublicIp") != "DISABLED":
        problems.append(f"{name}: assignPublicIp must be DISABLED")


def snake(key):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def terraform_task_definition(doc):
    out = {snake(k): v for k, v in doc.items() if k not in ("containerDefinitions", "volumes", "runtimePlatform", "tags")}
    out["container_definitions"] = json.dumps(doc["containerDefinitions"])
    out["volume"] = [{"name": v["name"]} for v in doc.get("volumes", [])]
    if "runtimePlatform" in doc:
        out["runtime_platform"] = [{snake(k): v for k, v in doc["runtimePlatform"].items()}]
    out["tags"] = {t["key"]: t["value"] for t in doc.get("tags", [])}
    return out


def terraform_service(doc):
    dc = doc["deploymentConfiguration"]
    net = doc["networkConfiguration"]["awsvpcConfiguration"]
    return {
        "name": doc["serviceName"],
        "cluster": doc["cluster"],
        "task_definition": doc["taskDefinition"],
        "desired_count": doc["desiredCount"],
        "launch_type": doc["launchType"],
        "platform_version": doc.get("platformVersion"),
        "deployment_minimum_healthy_percent": dc["minimumHealthyPercent"],
        "deployment_maximum_percent": dc["maximumPercent"],
        "deployment_circuit_breaker": [{"enable": dc["deploymentCircuitBreaker"]["enable"], "rollback": dc["deploymentCircuitBreaker"]["rollback"]}],
        "network_configuration": [{"subnets": net["subnets"], "security_groups": net["securityGroups"], "assign_public_ip": net["assignPublicIp"] == "ENABLED"}],
        "enable_execute_command": doc.get("enableExecuteCommand", False),
        "propagate_tags": doc.get("propagateTags"),
        "enable_ecs_managed_tags": doc.get("enableECSManagedTags", False),
        "tags": {t["key"]: t["value"] for t in doc.get("tags", [])},
    }


def main():
    ecs_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    model = botocore.session.get_session().get_service_model("ecs")
    problems, resources, checked = [], {"aws_ecs_task_definition": {}, "aws_ecs_service": {}}, 0
    files = sorted(ecs_dir.glob("*.json"))
    if not files:
        problems.append(f"{ecs_dir}: no ECS JSON files")
    for path in files:
        name = str(path)
        op = operation_of(path)
        if op is None:
            problems.append(f"{name}: name must end in -task-definition.json, -service.json or -run-task.json")
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            problems.append(f"{name}: not valid JSON: {e}")
            continue
        report = ParamValidator().validate(doc, model.operation_model(op).input_shape)
        if report.has_errors():
            problems.append(f"{name}: not a valid {op} request:\n{report.generate_report()}")
            continue
        checked += 1
        key = path.stem.replace("-", "_")
        if op == "RegisterTaskDefinition":
            check_task_definition(name, doc, problems)
            resources["aws_ecs_task_definition"][key] = terraform_task_definition(doc)
        elif op == "CreateService":
            check_service(name, doc, problems)
            resources["aws_ecs_service"][key] = terraform_service(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ecs.tf.json").write_text(json.dumps({"resource": resources}, indent=1))
    for p in problems:
        print(p)
    print(f"  ECS JSON: {checked} of {len(files)} files valid against the ECS API model, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
